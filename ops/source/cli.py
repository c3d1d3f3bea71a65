def add_source_commands(sub):
    pass
