"""The drawing pad and the HTTP API: a FastAPI app around a loaded `predict.Classifier`.

`app.create_app(classifier)` builds the app and `server.serve()` runs it on uvicorn. No ML logic of
its own: `classify.py` hands payloads to `images.prepare_image_batch`, the classifier and its
`decide` (batched by `batching.py`), or to `reading.read_number` for a number; `guards.py` refuses
unknown Host headers and bodies too large or too slow before the app reads them; `answers.py` holds
the answer shapes and errors the OpenAPI description declares. The page in `static/` is plain HTML,
CSS and JavaScript: no CDN, no build step.
"""
