"""face2emoticon stage."""
