"""Reading the store: reports, the stats API, the dashboard, admin queries and erasure."""
