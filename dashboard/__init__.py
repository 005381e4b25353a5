"""The round explorer (`dgpt dashboard`): a local, read-only web page over the chain and the store."""
