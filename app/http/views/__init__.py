"""The API's views, one module per group of routes: thin functions that parse, call one service
and shape the answer."""
