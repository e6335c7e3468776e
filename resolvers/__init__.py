"""Domain logic shared by both faces (GraphQL and REST): plain async functions."""
