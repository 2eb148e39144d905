"""Pixel data handling: transfer syntax conversion for objects sent to peers."""
