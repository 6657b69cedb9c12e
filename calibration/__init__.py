"""The per-patient session: importing and recording data, cue protocols, training and acceptance."""
