"""Sans-I/O core: codes, envelopes and codecs, state machine, hub. No network imports."""
