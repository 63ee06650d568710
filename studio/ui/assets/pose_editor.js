// Pose editor (js_on_load of a gr.HTML): draws the OpenPose skeleton held in props.value (OpenPose
// JSON at the generation size) as SVG in the standard colours, lets the user drag keypoints, and on
// release writes the new JSON into props.value and fires the component's "input" event.
// Globals given by Gradio: element, props, trigger, watch.
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const svg = element.querySelector(".pose-svg");
  const status = element.querySelector(".pose-status");
  const names = props.names || [];
  const limbs = props.limbs || [];
  const colors = props.colors || [];
  let pose = null;  // {width, height, points: [[x, y] | null, ...]}
  let drag = null;  // {index, circle}

  function parse(text) {
    try {
      const data = JSON.parse(text);
      const flat = data.people[0].pose_keypoints_2d;
      const points = names.map(function (_, i) {
        return flat[3 * i + 2] > 0 ? [flat[3 * i], flat[3 * i + 1]] : null;
      });
      return { width: data.canvas_width, height: data.canvas_height, points: points };
    } catch (error) {
      return null;
    }
  }

  function serialize() {
    const flat = [];
    pose.points.forEach(function (p) {
      if (p) flat.push(Math.round(p[0] * 10) / 10, Math.round(p[1] * 10) / 10, 1.0);
      else flat.push(0.0, 0.0, 0.0);
    });
    return JSON.stringify({ canvas_width: pose.width, canvas_height: pose.height,
                            people: [{ pose_keypoints_2d: flat }] });
  }

  function rgb(color, scale) {
    return "rgb(" + color.map(function (c) { return Math.floor(c * scale); }).join(",") + ")";
  }

  function node(tag, attributes) {
    const el = document.createElementNS(SVG, tag);
    Object.keys(attributes).forEach(function (key) { el.setAttribute(key, attributes[key]); });
    return el;
  }

  function draw() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!pose) { status.textContent = "No valid pose."; return; }
    const unit = Math.max(pose.width, pose.height);
    svg.setAttribute("viewBox", "0 0 " + pose.width + " " + pose.height);
    svg.appendChild(node("rect", { x: 0, y: 0, width: pose.width, height: pose.height, fill: "#000" }));
    limbs.forEach(function (limb, i) {  // limbs at 60 %, as OpenPose draws them
      const a = pose.points[limb[0]], b = pose.points[limb[1]];
      if (!a || !b) return;
      svg.appendChild(node("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: rgb(colors[i], 0.6),
                                     "stroke-width": unit / 40, "stroke-linecap": "round", "data-limb": i }));
    });
    pose.points.forEach(function (p, i) {
      if (!p) return;
      const circle = node("circle", { cx: p[0], cy: p[1], r: unit / 32, fill: rgb(colors[i], 1),
                                      stroke: "#fff", "stroke-width": unit / 256, "data-index": i,
                                      "data-name": names[i] });
      const title = node("title", {});
      title.textContent = names[i];
      circle.appendChild(title);
      svg.appendChild(circle);
    });
  }

  function toCanvas(event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const local = point.matrixTransform(svg.getScreenCTM().inverse());
    return [Math.min(Math.max(local.x, 0), pose.width), Math.min(Math.max(local.y, 0), pose.height)];
  }

  svg.addEventListener("pointerdown", function (event) {
    const index = event.target.getAttribute && event.target.getAttribute("data-index");
    if (index === null || index === undefined || !pose) return;
    drag = { index: Number(index) };
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", function (event) {
    if (!drag) return;
    pose.points[drag.index] = toCanvas(event);
    draw();
    const p = pose.points[drag.index];
    status.textContent = names[drag.index] + ": " + p[0].toFixed(1) + ", " + p[1].toFixed(1);
  });
  function release(event) {
    if (!drag) return;
    drag = null;
    if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
    props.value = serialize();
    trigger("input");
  }
  svg.addEventListener("pointerup", release);
  svg.addEventListener("pointercancel", release);

  watch("value", function () {  // the pose changed on the server side (preset, table, upload, size)
    if (drag) return;
    pose = parse(props.value);
    draw();
  });
  pose = parse(props.value);
  draw();
})();
