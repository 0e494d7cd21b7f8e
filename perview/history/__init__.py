"""Recorded history: blocks of lines compressed into append-only segment files, an SQLite index
of each block's source, part, time range and line numbers, the recorder that feeds them from a
hub's ring, and search over them."""
