"""Memory in use, in A1111's /sdapi/v1/memory shape: RAM (psutil) and CUDA (torch) when there is one."""
from __future__ import annotations

from typing import Any

import psutil
import torch


def memory_report() -> dict[str, Any]:
    """{"ram": {free, used, total}, "cuda": {...} or {"error": why}} as A1111 (bytes)."""
    process = psutil.Process()
    system = psutil.virtual_memory()
    ram = {"free": system.available, "used": process.memory_info().rss, "total": system.total}
    if not torch.cuda.is_available():
        return {"ram": ram, "cuda": {"error": "unavailable"}}
    free, total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()

    def pair(name: str) -> dict[str, int]:
        return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

    cuda = {"system": {"free": free, "used": total - free, "total": total}, "active": pair("active_bytes"),
            "allocated": pair("allocated_bytes"), "reserved": pair("reserved_bytes"),
            "inactive": pair("inactive_split_bytes"),
            "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)}}
    return {"ram": ram, "cuda": cuda}
