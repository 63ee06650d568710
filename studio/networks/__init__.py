"""Networks beside the model: LoRA/LyCORIS adapters, textual inversion embeddings, VAE choice.

They are named by the request (prompt tags, the embedding's name in the prompt, the `vae` field),
found under models/Lora, models/embeddings and models/VAE, loaded once per model and cached on it,
recorded in infotext with A1111's hashes, and undone cleanly: a request without them gives the same
pixels as a fresh start.
"""
