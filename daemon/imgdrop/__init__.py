"""imgdrop: watch a folder, upload each image to Imgur, leave a link file behind."""

__version__ = "0.1.0"
