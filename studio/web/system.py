"""A1111's system routes in its shapes: scripts, script-info, extensions, memory, unload/reload-checkpoint,
face-restorers, realesrgan-models, hypernetworks, sd-modules, interrogate, server-stop/-restart/-kill.

What this studio has not got is answered honestly: only the face restorers whose files are in models/,
a clear 501 where A1111 would run a model that is not here (interrogate without a CLIP model folder).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from studio.images import decode_image
from studio.service import interrogate as interrogation
from studio.service import lifecycle
from studio.web.callers import caller

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"


class InterrogateRequest(BaseModel):
    image: str = ""
    model: str = "clip"


def routes(router: APIRouter, services: "Services") -> None:
    @router.get(f"{PREFIX}/scripts")
    def scripts() -> dict[str, list[str]]:
        """The scripts a request may name as script_name (A1111 lists them lower-cased, per tab)."""
        titles = [title.lower() for title in services.extensions.api_script_titles()]
        return {"txt2img": titles, "img2img": list(titles)}

    @router.get(f"{PREFIX}/script-info")
    def script_info() -> list[dict[str, Any]]:
        """Each script once per tab; its positional script_args are described in docs/api.md."""
        titles = [title.lower() for title in services.extensions.api_script_titles()]
        return [{"name": title, "is_alwayson": False, "is_img2img": img2img, "args": []}
                for img2img in (False, True) for title in titles]

    @router.get(f"{PREFIX}/extensions")
    def extensions() -> list[dict[str, Any]]:
        return [{"name": row["folder"], "remote": None, "branch": None, "commit_hash": None,
                 "version": row.get("version") or None, "commit_date": None,
                 "enabled": row.get("status", "").startswith(("loaded", "enabled"))} for row in services.extensions.rows()]

    @router.get(f"{PREFIX}/memory")
    def memory() -> dict[str, Any]:
        return services.models.memory()

    @router.post(f"{PREFIX}/unload-checkpoint")
    def unload_checkpoint() -> None:
        services.models.unload()

    @router.post(f"{PREFIX}/reload-checkpoint")
    def reload_checkpoint() -> None:
        services.models.reload()

    @router.get(f"{PREFIX}/face-restorers")
    def face_restorers() -> list[dict[str, Any]]:
        """The restorers whose weights are in models/GFPGAN or models/Codeformer, in A1111's shape."""
        return services.extras.face_restorers()

    @router.get(f"{PREFIX}/realesrgan-models")
    def realesrgan_models() -> list[dict[str, Any]]:
        """A1111's Real-ESRGAN upscalers whose file is in models/RealESRGAN (by A1111's names)."""
        return [{"name": entry.name, "path": str(entry.path), "scale": entry.scale or (2 if "2x" in entry.name else 4)}
                for entry in services.extras.upscalers().values()
                if entry.folder == "RealESRGAN" and entry.path is not None and entry.name.startswith("R-ESRGAN")]

    @router.get(f"{PREFIX}/hypernetworks")
    def hypernetworks() -> list[dict[str, str]]:
        """models/hypernetworks files; a <hypernet:...> tag in a prompt is refused with a message."""
        return services.networks.hypernetwork_items()

    @router.get(f"{PREFIX}/sd-modules")
    def sd_modules() -> list[dict[str, str]]:
        """The modules that load beside a checkpoint: the VAE files (A1111 lists its VAE and text encoders)."""
        return services.networks.vae_items()

    @router.post(f"{PREFIX}/interrogate")
    def interrogate(body: InterrogateRequest, http: Request) -> Any:
        """A1111's {"caption": ...}: the CLIP interrogator's ranked lists when models/interrogate/ holds a
        CLIP model folder; 501 naming the folder to place when not."""
        if body.model not in interrogation.MODELS:
            return JSONResponse(status_code=422, content={
                "detail": f"model: unknown interrogator {body.model!r}; A1111's are: {', '.join(interrogation.MODELS)}"})
        image = decode_image(body.image, "image")  # a bad image is the client's error first (422)
        try:
            # A model run like an Extras job: one turn in generation's fair queue (its size and per-user
            # share refused at once with a 429), never a thread of its own beside the engine.
            with services.generation.queue.exclusive(caller(http).owner):
                return {"caption": interrogation.interrogate(services.settings, image, body.model)}
        except interrogation.InterrogatorUnavailable as error:
            return JSONResponse(status_code=501, content={"detail": str(error)})

    def process_control(name: str, action: Any) -> Any:
        def handler() -> JSONResponse:
            refusal = lifecycle.operator_only_refusal(services.settings)
            if refusal is not None:
                return JSONResponse(status_code=403, content={"detail": refusal})
            lifecycle.later(action)
            return JSONResponse(status_code=200, content={"detail": f"server-{name}: done shortly"})
        return handler

    router.post(f"{PREFIX}/server-stop")(process_control("stop", lifecycle.stop_server))
    router.post(f"{PREFIX}/server-kill")(process_control("kill", lifecycle.kill_server))
    router.post(f"{PREFIX}/server-restart")(
        process_control("restart", lambda: lifecycle.restart_server(services.generation)))
