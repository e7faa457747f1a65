"""Sky models: the makesourcedb/DP3 text format, patches and directions."""
