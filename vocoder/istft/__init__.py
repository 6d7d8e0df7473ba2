"""Frame-rate iSTFT vocoder (Vocos/APNet family); ``python -m vocoder.istft.train`` trains it."""
