"""The curated zone's versions: their serving files, the ones kept and served, and erasure in them.

Publish writes a version; operators list, roll back and erase in the ones kept (ops/).
"""

# Rows per row group of a curated file, and rows of one read back at a time (publish's base, the serving
# files, an erasure's rewrite): what bounds their memory, whatever the catalogue.
RANGE_ROWS = 65_536
