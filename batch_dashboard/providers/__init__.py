"""Telephony providers behind one small interface (base.py)."""
