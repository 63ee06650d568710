"""A1111 prompt syntax, in small parts: network tags, attention weights, prompt-editing schedules
and the text-encoder side (chunks, clip skip, emphasis). `studio.prompting.conditioning` is the facade the engine uses."""
