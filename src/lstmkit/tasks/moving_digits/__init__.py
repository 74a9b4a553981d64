"""``moving-digits``: handwritten digits bouncing in a canvas, the last frames predicted by a ConvLSTM."""
