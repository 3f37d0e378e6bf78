"""pgkeel: highly available PostgreSQL with streaming replication."""
