"""Per-stream tables bounded by recency: a stream not seen for the longest time goes first."""


def touch(table, key, make, limit):
    """table[key] (an OrderedDict), made with make() when absent and now the most recently seen;
    returns (value, how many entries went to keep the table at `limit`)."""
    value = table.get(key)
    if value is not None:
        table.move_to_end(key)
        return value, 0
    gone = 0
    while len(table) >= limit:
        table.popitem(last=False)
        gone += 1
    value = table[key] = make()
    return value, gone
