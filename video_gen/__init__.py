"""video_gen stage."""
