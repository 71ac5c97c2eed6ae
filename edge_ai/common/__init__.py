"""What every edge program shares: its configuration (``edgeconfig.xml`` + environment), a VMS
client that buffers on disk while the VMS is unreachable, a tiny local HTTP API, frame sources.

Kept free of the services' heavy dependencies (fastapi, sqlalchemy): these modules run on the
Jetson boxes next to the cameras, inside small AI package images.
"""
