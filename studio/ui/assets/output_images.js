// Output galleries (.studio-output): show the whole image, never cropped. Images of at most 128 px
// a side are scaled by a whole factor (at most 4x) with crisp pixels instead of a 9x blur-up;
// larger images are fitted into the box (object-fit: contain).
(() => {
  const SMALL = 128, MAX_ZOOM = 4;
  const FIT = '.studio-output .media-button img, .studio-output .thumbnail-lg img';

  function fit(img) {
    const box = img.parentElement;
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!box || !w || !h || !box.clientWidth || !box.clientHeight) return;
    const room = Math.min(box.clientWidth / w, box.clientHeight / h);
    const small = w <= SMALL && h <= SMALL;
    let scale = small ? Math.min(room, MAX_ZOOM) : room;
    if (small && scale >= 1) scale = Math.floor(scale);
    img.style.width = `${Math.floor(w * scale)}px`;
    img.style.height = `${Math.floor(h * scale)}px`;
    img.classList.toggle('studio-pixelated', small);
  }

  const boxes = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const img = entry.target.querySelector(':scope > img');
      if (img && img.matches(FIT)) fit(img);
    }
  });

  document.addEventListener('load', (event) => {
    const img = event.target;
    if (!(img instanceof HTMLImageElement) || !img.matches(FIT)) return;
    fit(img);
    boxes.observe(img.parentElement);
  }, true);
})();
