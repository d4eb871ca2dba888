// Photos shrunk in the browser before they travel: a 12-megapixel phone photo holds far more
// than reading a check needs, and on a small Redis every megabyte sent waits for room. JPEG and
// PNG photos whose long side is over the deployment's PHOTO_MAX_PIXELS_LONG are decoded
// (turned upright by their EXIF orientation), scaled down and re-encoded as JPEG here, with no
// network access. Anything else, or a photo that would not get smaller, is sent as it is.

const QUALITY = 0.85;

function isPhoto(file) {
  return /^image\/(jpeg|png)$/i.test(file.type) || /\.(jpe?g|png)$/i.test(file.name);
}

// One photo at a time: a decoded 12-megapixel image is 48 MB in the tab.
let lock = Promise.resolve();

/**
 * The shrunk photo as { file, from, to, ms }, or null to send the original (not a photo,
 * small enough already, not decodable here, or no smaller after re-encoding).
 */
export function shrinkPhoto(file, maxLong) {
  const run = lock.then(() => shrink(file, maxLong));
  lock = run.catch(() => null);
  return run.catch(() => null);
}

async function shrink(file, maxLong) {
  if (!isPhoto(file) || !maxLong || typeof createImageBitmap !== 'function') return null;
  const started = performance.now();
  let full;
  try {
    full = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return null;
  }
  const long = Math.max(full.width, full.height);
  if (long <= maxLong) {
    full.close();
    return null;
  }
  const scale = maxLong / long;
  const width = Math.max(1, Math.round(full.width * scale));
  const height = Math.max(1, Math.round(full.height * scale));
  let small = null;
  try {
    small = await createImageBitmap(full, { resizeWidth: width, resizeHeight: height, resizeQuality: 'high' });
  } catch {
    small = null;
  }
  let blob = null;
  try {
    const canvas = typeof OffscreenCanvas === 'function'
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement('canvas'), { width, height });
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(small || full, 0, 0, width, height);
    blob = canvas.convertToBlob
      ? await canvas.convertToBlob({ type: 'image/jpeg', quality: QUALITY })
      : await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', QUALITY));
  } finally {
    full.close();
    if (small) small.close();
  }
  if (!blob || blob.size >= file.size) return null;
  const name = `${file.name.replace(/\.[^.]*$/, '') || 'photo'}.jpg`;
  return {
    file: new File([blob], name, { type: 'image/jpeg' }),
    from: file.size,
    to: blob.size,
    ms: Math.round(performance.now() - started),
  };
}
