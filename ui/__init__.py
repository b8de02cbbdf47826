"""The product's entry points: the command line, the Streamlit page and the pipeline they share."""
