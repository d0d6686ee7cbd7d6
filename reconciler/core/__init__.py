"""Pure values and maths: the model, the error tree, names, settings, the app spec and
crontab languages, the desired state and the plan. Imports nothing else of the package."""
