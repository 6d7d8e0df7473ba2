"""The toolbox's PyQt5 window, the only Qt code of the project (docs/toolbox.md)."""
