"""The weather (environment) AI, ai_class 00: posts the environment class code to the VMS every
second."""
