"""The ClickHouse store: the client, the migrations runner, retention and the shipped SQL."""
