"""HTTP edge: middlewares, request helpers and response shaping (the only aiohttp-aware layer
besides handlers)."""
