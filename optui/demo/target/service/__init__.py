"""A small payments service used to demonstrate optui."""
