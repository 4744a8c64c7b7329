ALTER TABLE {{db}}.events_rejected {{on_cluster}}
    RESET SETTING non_replicated_deduplication_window, replicated_deduplication_window;
