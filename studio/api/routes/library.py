from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from studio.api.library import list_adapter_entries, list_models

router = APIRouter(tags=["library"])


@router.get("/api/models", summary="Starter and user models in models/ (with their cards)")
def models() -> list[dict[str, Any]]:
    return list_models()


@router.get("/api/adapters", summary="Adapters in adapters/ (LoRA, affiners) with their training record")
def adapters() -> list[dict[str, Any]]:
    return list_adapter_entries()
