// The demo's drawing canvas (tools/demo.py, drawing_canvas): the js_on_load of a gr.HTML, run once
// when the page shows it, with `element` (the toolbar and a <canvas> at the generator's own size),
// `props` (props.value: the canvas as a PNG data URL, what Python reads), `trigger` and `watch`.
// Strokes paint whole pixels, each exactly the pen's colour (no antialiasing: the red of the hole
// pen stays red); when the pen lifts, the canvas goes to Python at once (the "input" event).
const canvas = element.querySelector("canvas");
const ctx = canvas.getContext("2d", {willReadFrequently: true});
const start = document.createElement("canvas");  // the picture the drawing started from: the eraser's paint
start.width = canvas.width;
start.height = canvas.height;
const size = element.querySelector(".size");
const undo = [], redo = [];
let paint = element.querySelector(".tool").value;  // a CSS colour, or "erase"
let last = null;                                     // the pen's pixel [x, y] while it is down
ctx.imageSmoothingEnabled = false;

function send() {  // the canvas to Python: the value, then the stroke event
    props.value = canvas.toDataURL("image/png");
    trigger("input");
}

function show(url) {  // a picture from Python (example, upload, clear, cut hole): a new start, no undo
    const picture = new Image();
    picture.onload = () => {
        ctx.drawImage(picture, 0, 0);
        start.getContext("2d").drawImage(picture, 0, 0);
        undo.length = redo.length = 0;
    };
    picture.src = url;
}

function row(x, y, width) {  // `width` pixels from (x, y) rightwards: the pen's colour, or the start's
    const x0 = Math.max(0, x), x1 = Math.min(canvas.width, x + width);
    if (y < 0 || y >= canvas.height || x1 <= x0) return;
    if (paint === "erase") {
        ctx.drawImage(start, x0, y, x1 - x0, 1, x0, y, x1 - x0, 1);
    } else {
        ctx.fillStyle = paint;
        ctx.fillRect(x0, y, x1 - x0, 1);
    }
}

function dab(x, y) {  // a round dab, `size` pixels wide, on pixel (x, y): the pixels whose centre it covers
    const width = +size.value, r = width / 2, corner = Math.floor((width - 1) / 2);
    for (let j = 0; j < width; j++) {
        const dy = j + 0.5 - r, half = Math.sqrt(r * r - dy * dy);
        const i0 = Math.ceil(r - 0.5 - half), i1 = Math.floor(r - 0.5 + half);
        row(x - corner + i0, y - corner + j, i1 - i0 + 1);
    }
}

function line([x0, y0], [x1, y1]) {  // dabs from pixel to pixel, one per step of the longer side
    const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let i = 0; i <= steps; i++) {
        dab(Math.round(x0 + (x1 - x0) * i / steps), Math.round(y0 + (y1 - y0) * i / steps));
    }
}

function pixel(event) {  // the canvas pixel [x, y] under the pointer (the canvas is shown scaled up)
    const box = canvas.getBoundingClientRect();
    return [Math.floor((event.clientX - box.left) / box.width * canvas.width),
            Math.floor((event.clientY - box.top) / box.height * canvas.height)];
}

function step(from, to) {  // undo or redo: the canvas as it was, the present kept on the other stack
    if (!from.length) return;
    to.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    ctx.putImageData(from.pop(), 0, 0);
    send();
}

canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;  // the left button, a finger or a pen's tip
    canvas.setPointerCapture(event.pointerId);  // its pointerup comes here, even off the canvas
    undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (undo.length > 100) undo.shift();
    redo.length = 0;
    last = pixel(event);
    line(last, last);
});
canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const now = pixel(event);
    line(last, now);
    last = now;
});
for (const end of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(end, () => {
        if (!last) return;
        last = null;
        send();
    });
}
for (const tool of element.querySelectorAll(".tool")) {  // the pens, the colour picker, the eraser
    const choose = () => {
        paint = tool.value;
        element.querySelectorAll(".tool").forEach((t) => t.classList.toggle("chosen", t === tool));
    };
    tool.addEventListener("click", choose);
    tool.addEventListener("input", choose);
}
element.querySelector(".undo").addEventListener("click", () => step(undo, redo));
element.querySelector(".redo").addEventListener("click", () => step(redo, undo));
watch("value", () => show(props.value));  // set by Python
show(props.value);
