"""`stylenet app`: a small web page over `stylenet.load_model` (optional: pip install -e ".[app]").

`catalog` lists the models a page may run and keeps each one loaded; `handlers` are the functions
behind the page's buttons, plain Python that tests call directly; `layout` arranges them with Gradio;
`server` starts it. Only `layout` and `server` need Gradio at import time.
"""
