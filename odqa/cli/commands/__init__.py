"""CLI commands, one module each: parse, call the library once, render."""
