"""EventTable as osqueryd sees it: registered with the event-based attribute."""

def test_an_event_table_is_event_based_in_its_routes_and_its_spec():
    from osqsdk import Column, EventTable

    table = EventTable("acme_events", [Column("pid", "BIGINT")])
    routes = table.call({"action": "columns"}).rows
    assert {"id": "attributes", "attributes": "4"} in routes  # osquery's EVENT_BASED bit
    assert table.spec()["evented"] is True
