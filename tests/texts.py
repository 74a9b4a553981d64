"""A few lines of Shakespeare: the text tiny language-model runs in the tests train on (repeated)."""

SMALL_TEXT = """\
ROMEO.
But soft, what light through yonder window breaks?
It is the east, and Juliet is the sun.

JULIET.
O Romeo, Romeo, wherefore art thou Romeo?
Deny thy father and refuse thy name.
"""
