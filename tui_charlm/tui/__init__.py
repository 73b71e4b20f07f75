"""`charlm-tui`: a Textual app that trains the model and shows it learning."""
