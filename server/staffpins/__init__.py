"""Staff PINs set from the console, sealed to the school's edges; the centre keeps no PIN and no
hash of one, only ciphertexts until each edge acknowledges (``protocol.sealing``)."""
