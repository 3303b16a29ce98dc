"""The drawing pad and the HTTP API: a FastAPI app around a loaded `predict.Classifier`.

`app.create_app(classifier)` builds the app (no ML logic of its own: images go through
`images.prepare_image` and the classifier); `digitlab.web.server.serve()` runs it on uvicorn.
The page in `static/` is plain HTML, CSS and JavaScript: no CDN, no build step.
"""
