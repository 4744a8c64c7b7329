"""HTTP ingestion: read a request, decode it, check it, enrich it into rows, hand the rows to the pipeline."""
