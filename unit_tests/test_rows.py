"""EncodedRows: one JSON array, read back like the list it was made from."""

import orjson

from destination_iterable.iterable.rows import EncodedRows


def test_encoded_rows_read_back_like_the_list() -> None:
    rows = [{"email": f"m{i}@example.com", "dataFields": {"n": i, "s": "é\n\"", "f": 1.5}} for i in range(7)]
    encoded = EncodedRows(rows)
    assert len(encoded) == 7
    assert orjson.loads(encoded.json) == rows == list(encoded) == encoded.decode()
    assert encoded[2] == rows[2] and encoded[:3] == rows[:3] and encoded[3:] == rows[3:]
    # embedded in a request body it gives the same bytes as the rows themselves
    assert orjson.dumps({"listId": 1, "subscribers": orjson.Fragment(encoded.json)}) == \
        orjson.dumps({"listId": 1, "subscribers": rows})
