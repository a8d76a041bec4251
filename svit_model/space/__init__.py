"""The grounded-chat Space (Gradio, the `app` extra): `app.py` is the app, the same file a Space runs;
`folder` writes a Space folder around a checkpoint (`svit space`) and serves it locally (`svit app`).

Importing this package does not import gradio."""

from svit_model.space.folder import app_settings, local_demo, serve, write_space

__all__ = ["app_settings", "local_demo", "serve", "write_space"]
