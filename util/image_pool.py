"""History buffer of generated images, used to update discriminators with older fakes (Shrivastava et al.)."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import torch


class ImagePool:
    """Keep up to ``pool_size`` past images; ``query`` returns a mix of new and stored ones (official semantics)."""

    def __init__(self, pool_size: int) -> None:
        """Create an empty pool; ``pool_size`` 0 makes ``query`` a pass-through."""
        self.pool_size = int(pool_size)
        self.num_imgs = 0
        self.images: List[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch where each image is, once the pool is full, swapped with a stored one with p = 0.5."""
        if self.pool_size == 0:
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.detach(), 0)
            if self.num_imgs < self.pool_size:
                self.num_imgs += 1
                self.images.append(image)
                return_images.append(image)
            else:
                p = random.uniform(0, 1)
                if p > 0.5:
                    random_id = random.randint(0, self.pool_size - 1)
                    stored = self.images[random_id].clone().to(image.device)
                    self.images[random_id] = image
                    return_images.append(stored)
                else:
                    return_images.append(image)
        return torch.cat(return_images, 0)

    def state_dict(self) -> Dict[str, Any]:
        """Return the pool contents (CPU tensors) for a resumable training state."""
        return {
            "pool_size": self.pool_size,
            "num_imgs": self.num_imgs,
            "images": [image.detach().cpu().clone() for image in self.images],
        }

    def load_state_dict(self, state: Dict[str, Any], device: Any = None) -> None:
        """Restore a pool saved by ``state_dict`` (optionally moving the images to ``device``)."""
        pool_size = int(state["pool_size"])
        if pool_size != self.pool_size:
            raise ValueError(
                f"ImagePool state was saved with --pool_size {pool_size}, but this run uses --pool_size {self.pool_size}"
            )
        images = list(state["images"])
        if int(state["num_imgs"]) != len(images) or len(images) > self.pool_size:
            raise ValueError("ImagePool state is inconsistent: num_imgs does not match the stored images")
        self.images = [image.to(device) if device is not None else image for image in images]
        self.num_imgs = len(images)
