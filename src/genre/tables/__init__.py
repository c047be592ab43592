"""People's tables in original units: answering a block, changes, reading and writing files.

Never imports genre.core: it works against the small protocol in genre.tables.protocol."""
