"""The operator's app: a Textual front end over the engine."""
