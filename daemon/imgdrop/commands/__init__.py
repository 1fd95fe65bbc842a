"""One module per `imgdrop` command; cli.py only parses and dispatches."""
