"""synth: the realistic hand (LibHand mesh posed by the 27 parameters), the synthetic RGB-D
data generator (``synth.generator``), the sensor model and contact sheets.

Import the modules you need (``from synth.libhand import LibHandModel``); nothing is imported
eagerly so ``python -m synth.<module>`` runs cleanly.
"""
