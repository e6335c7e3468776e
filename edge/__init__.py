"""The HTTP edge every face stands behind: what `schema/` and `rest_compat/` both use.

Domain errors as HTTP statuses and the JSON error body, request ids, refusals given before a
route runs (shaped for the face the path belongs to), the streaming multipart reader. It
imports no face; `resolvers/` does not import it (it is Starlette).
"""
