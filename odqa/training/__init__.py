"""Training odqa's own models: one shared loop (:mod:`odqa.training.loop`) and one task module
per model kind (``reader``, ``dense``)."""
