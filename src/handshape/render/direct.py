"""A few raw OpenGL calls a frame for the synthetic data: one shader, one buffer, one framebuffer.

pyrender rebuilds a scene graph, vertex arrays and every uniform for each frame, about 170 GL
calls through PyOpenGL; on a CPU rasteriser that Python costs more than the drawing itself.
This draws the same thing with about 20 calls: the vertices of all parts in one interleaved
buffer (position, normal, linear albedo, part id, roughness), one draw, two read-backs. The
shading is the usual metallic-roughness model with metalness 0 (Schlick Fresnel from a
dielectric 4 % reflectance, Smith-Schlick geometry, GGX distribution), the light conventions of
pyrender (directional: intensity as radiance; point and spot: intensity over squared distance;
spot cones smooth between half and full angle) so that the lighting set-ups keep their meaning,
and the output gamma 1/2.2. The GL context itself comes from pyrender's platform layer
(EGL or OSMesa, `handshape.render.backend`).

Shadows: a light with `shadow` set first draws the scene's depth from its own view
(`handshape.render.shadows`) into one layer of a depth texture array, then the main pass looks
that map up with hardware depth comparison; ambient light is never shadowed. The lookups run
in a loop over the casting lights alone, in a program compiled for that many casters: on a
CPU rasteriser a branch inside the loop over all lights costs its body for every light.
- Hard shadows: one bilinear comparison (the hardware's 2x2 percentage-closer filter).
- Soft shadows: percentage-closer filtering over a disk whose radius (metres at the receiver)
  is the light's softness: SOFT_TAPS bilinear comparisons on a Vogel spiral, turned per pixel
  by a fixed noise so that the few taps give a smooth penumbra rather than copies of the edge.
  A soft shadow's map uses only a corner of its layer, sized to SOFT_TEXELS texels per filter
  radius: the taps then cover the disk densely (no grain) and the depth pass draws less.
  Chosen over PCSS (a blocker search, then a filter sized by the blocker's distance) because
  that doubles the taps per pixel on a CPU rasteriser, and within a hand the blockers sit 1 to 5
  cm from their receivers, so a penumbra growing with that distance varies little across one
  picture; the range of softnesses across samples covers the range of light sizes instead.
- Bias: slope-scaled polygon offset in the depth pass, and a lookup point moved off the
  surface along its normal by about a texel (more at grazing light). The disk taps compare
  against the receiver's tangent plane (from the interpolated normal; screen-space
  derivatives jump at every mesh edge and drew dark seams) and allow it to curve towards the
  light by half its distance from the centre (the creases at the base of the fingers would
  otherwise shadow themselves). A lit, slanted surface never shadows itself (acne), and the
  biases stay a fraction of a millimetre for hard shadows, under a pixel at a contact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handshape.render.shadows import light_view

_VERTEX = """
#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
layout(location = 2) in vec4 albedo_id;
layout(location = 3) in float roughness;
uniform mat4 projection;
out vec3 frag_position;
out vec3 frag_normal;
out vec4 frag_albedo_id;
out float frag_roughness;
void main() {
    frag_position = position;
    frag_normal = normal;
    frag_albedo_id = albedo_id;
    frag_roughness = roughness;
    gl_Position = projection * vec4(position, 1.0);
}
"""

_FRAGMENT = """
#version 330 core
#define MAX_LIGHTS 4
#define SOFT_TAPS {soft_taps}
#define SHADOWS {shadows}  // compiled variants: 0 none, 1 hard only, 2 soft (and hard)
#define CASTERS {casters}  // how many lights cast shadows
#define CURVE_ALLOWANCE 0.5
const vec2 DISK[SOFT_TAPS] = vec2[]({disk});
const float PI = 3.141592653589793;
in vec3 frag_position;
in vec3 frag_normal;
in vec4 frag_albedo_id;
in float frag_roughness;
uniform int n_lights;
uniform int kind[MAX_LIGHTS];          // 0 directional, 1 point, 2 spot
uniform vec3 direction[MAX_LIGHTS];    // where the light travels (camera frame)
uniform vec3 light_position[MAX_LIGHTS];
uniform vec3 radiance[MAX_LIGHTS];     // colour x intensity
uniform vec2 cone[MAX_LIGHTS];         // spot: cos(inner), cos(outer)
uniform vec3 ambient;
uniform sampler2DArrayShadow shadow_maps;
uniform int caster[MAX_LIGHTS];          // the lights that cast shadows (map layer = light)
uniform mat4 shadow_matrix[MAX_LIGHTS];  // camera frame -> map (u, v, depth), after / w
uniform float shadow_radius[MAX_LIGHTS]; // filter disk radius, map units (0: hard)
uniform float shadow_texel[MAX_LIGHTS];  // metres per map texel at the receivers
uniform float shadow_size;               // texels per map side
out vec4 frag_color;

vec3 map_point(int i, vec3 p) {
    vec4 c = shadow_matrix[i] * vec4(p, 1.0);
    return c.xyz / c.w;
}

// Fraction of light i reaching a point p with unit normal n, l towards the light, nl = n.l.
float lit_fraction(int i, vec3 p, vec3 n, vec3 l, float nl) {
    float sin_l = sqrt(max(1.0 - nl * nl, 0.0));
    vec3 q = p + n * shadow_texel[i] * (0.5 + 1.5 * sin_l);
    // Behind a point or spot light's view (a receiver between the light and the camera) the
    // projection mirrors: nothing there can be shadowed by what the map saw.
    if ((shadow_matrix[i] * vec4(q, 1.0)).w <= 0.0) {
        return 1.0;
    }
    vec3 m = map_point(i, q);
    float layer = float(i);
    float radius = shadow_radius[i];
#if SHADOWS == 1
    return texture(shadow_maps, vec4(m.xy, layer, m.z));
#else
    if (radius <= 0.0) {
        return texture(shadow_maps, vec4(m.xy, layer, m.z));
    }
    // Depth slope, in map units, of the plane through q normal to n: each tap compares against
    // that plane's depth under it, not against the centre's. The interpolated normal rather
    // than screen-space derivatives: those jump at every edge of the mesh (dark seams).
    vec3 t1 = normalize(cross(n, abs(n.x) < 0.9 ? vec3(1.0, 0.0, 0.0) : vec3(0.0, 1.0, 0.0)));
    vec3 t2 = cross(n, t1);
    float step = 4.0 * shadow_texel[i];
    vec3 ax = map_point(i, q + step * t1) - m;
    vec3 ay = map_point(i, q + step * t2) - m;
    float det = ax.x * ay.y - ax.y * ay.x;
    vec2 slope = abs(det) > 1e-12
        ? vec2(ax.z * ay.y - ay.z * ax.y, ay.z * ax.x - ax.z * ay.x) / det : vec2(0.0);
    slope = clamp(slope, -8.0, 8.0);
    // The surface may also curve towards the light within the disk (the creases at the base
    // of the fingers): allow it CURVE_ALLOWANCE (a tangent) of rise per distance from q.
    float rise = (m.z - map_point(i, q + step * l).z) / step;  // map depth per metre
    float allowance = CURVE_ALLOWANCE * rise * shadow_texel[i] * shadow_size;
    // The fixed disk (DISK), turned per pixel.
    float turn = 6.2831853 * fract(52.9829189 * fract(dot(gl_FragCoord.xy,
                                                          vec2(0.06711056, 0.00583715))));
    mat2 spin = radius * mat2(cos(turn), sin(turn), -sin(turn), cos(turn));
    float sum = 0.0;
    for (int k = 0; k < SOFT_TAPS; k++) {
        vec2 o = spin * DISK[k];
        float reference = m.z + dot(slope, o) - allowance * length(o);
        sum += texture(shadow_maps, vec4(m.xy + o, layer, reference));
    }
    return sum / float(SOFT_TAPS);
#endif
}

void main() {
    vec3 albedo = frag_albedo_id.rgb;
    float r = clamp(frag_roughness, 0.04, 1.0);
    vec3 n = normalize(frag_normal);
    vec3 v = normalize(-frag_position);
    vec3 c_diff = albedo * 0.96;
    vec3 color = albedo * ambient;
    // The shadows first, in a loop over the casters alone: on a CPU rasteriser a branch inside
    // the loop over lights costs its whole body for every light, taken or not.
    float lit[MAX_LIGHTS] = float[](1.0, 1.0, 1.0, 1.0);
#if CASTERS > 0
    for (int c = 0; c < CASTERS; c++) {
        int i = caster[c];
        vec3 l = kind[i] == 0 ? normalize(-direction[i])
                              : normalize(light_position[i] - frag_position);
        lit[i] = lit_fraction(i, frag_position, n, l, clamp(dot(n, l), 0.001, 1.0));
    }
#endif
    for (int i = 0; i < n_lights; i++) {
        vec3 l;
        vec3 li = radiance[i];
        if (kind[i] == 0) {
            l = normalize(-direction[i]);
        } else {
            vec3 to_light = light_position[i] - frag_position;
            float d2 = dot(to_light, to_light);
            l = to_light / sqrt(d2);
            li /= d2;
            if (kind[i] == 2) {
                float cd = dot(normalize(direction[i]), -l);
                float s = clamp((cd - cone[i].y) / max(cone[i].x - cone[i].y, 0.001), 0.0, 1.0);
                li *= s * s;
            }
        }
        float nl = clamp(dot(n, l), 0.001, 1.0);
        li *= lit[i];
        vec3 h = normalize(l + v);
        float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
        float nh = clamp(dot(n, h), 0.0, 1.0);
        float vh = clamp(dot(v, h), 0.0, 1.0);
        vec3 f = vec3(0.04) + 0.96 * pow(1.0 - vh, 5.0);
        float k = (r + 1.0) * (r + 1.0) / 8.0;
        float g = nv / (nv * (1.0 - k) + k) * nl / (nl * (1.0 - k) + k);
        float a2 = r * r * r * r;
        float den = nh * nh * (a2 - 1.0) + 1.0;
        float dist = a2 / (PI * den * den);
        vec3 spec = f * g * dist / (4.0 * nl * nv + 0.001);
        color += nl * li * ((1.0 - f) * c_diff / PI + spec);
    }
    frag_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), frag_albedo_id.a);
}
"""

_SHADOW_VERTEX = """
#version 330 core
layout(location = 0) in vec3 position;
uniform mat4 light_clip;
void main() {
    gl_Position = light_clip * vec4(position, 1.0);
}
"""

_SHADOW_FRAGMENT = """
#version 330 core
void main() {
}
"""

_KINDS = {"directional": 0, "point": 1, "spot": 2}
MAX_LIGHTS = 4
SOFT_TAPS = 12  # bilinear comparisons per pixel of a soft shadow (each covers 2x2 texels)
SOFT_TEXELS = 3.0  # a soft shadow's map has this many texels across its filter's radius


def _disk() -> str:
    """The soft filter's taps on the unit disk (a Vogel spiral: even cover, no rings), GLSL."""
    k = np.arange(SOFT_TAPS)
    radius, angle = np.sqrt((k + 0.5) / SOFT_TAPS), 2.39996323 * k
    return ", ".join(
        f"vec2({x:.6f}, {y:.6f})"
        for x, y in zip(*radius * [np.cos(angle), np.sin(angle)], strict=True)
    )


# Slope-scaled depth offset of the shadow pass (glPolygonOffset factor, units).
_OFFSET_FACTOR, _OFFSET_UNITS = 1.5, 2.0


def projection_matrix(K: np.ndarray, size: int, znear: float, zfar: float) -> np.ndarray:
    """(4, 4) OpenGL projection of the OpenCV intrinsics K of a size x size crop (pixel centres
    at integers), for points in the OpenGL camera frame (x right, y up, looking along -z)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5
    p = np.zeros((4, 4))
    p[0, 0] = 2 * fx / size
    p[0, 2] = 1 - 2 * cx / size
    p[1, 1] = 2 * fy / size
    p[1, 2] = 2 * cy / size - 1
    p[2, 2] = -(zfar + znear) / (zfar - znear)
    p[2, 3] = -2 * zfar * znear / (zfar - znear)
    p[3, 2] = -1
    return p


class DirectDraw:
    """Owns a program, a vertex and index buffer and a single-sampled framebuffer of size x size
    in the current GL context (make it current before every call), and a depth texture array
    of MAX_LIGHTS shadow maps of shadow_size x shadow_size."""

    def __init__(self, size: int, shadow_size: int = 512) -> None:
        from OpenGL import GL
        from OpenGL.GL import shaders

        self.gl = GL
        self.size = size
        self.shadow_size = shadow_size
        self.programs: dict[tuple[int, int], tuple[Any, dict[str, Any]]] = {}
        self.shadow_program = shaders.compileProgram(
            shaders.compileShader(_SHADOW_VERTEX, GL.GL_VERTEX_SHADER),
            shaders.compileShader(_SHADOW_FRAGMENT, GL.GL_FRAGMENT_SHADER),
            validate=False,
        )
        self.light_clip = GL.glGetUniformLocation(self.shadow_program, "light_clip")
        self.vao = GL.glGenVertexArrays(1)
        self.vbo, self.ebo = GL.glGenBuffers(2)
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        stride = 11 * 4
        for location, (count, offset) in enumerate(((3, 0), (3, 3), (4, 6), (1, 10))):
            GL.glEnableVertexAttribArray(location)
            GL.glVertexAttribPointer(
                location, count, GL.GL_FLOAT, False, stride, GL.GLvoidp(offset * 4)
            )
        GL.glBindVertexArray(0)
        self.fbo = GL.glGenFramebuffers(1)
        self.colour, self.depth = GL.glGenRenderbuffers(2)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.colour)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_RGBA8, size, size)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.depth)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH_COMPONENT24, size, size)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferRenderbuffer(
            GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_RENDERBUFFER, self.colour
        )
        GL.glFramebufferRenderbuffer(
            GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth
        )
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"OpenGL framebuffer incomplete (status {status:#x})")
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        self._make_shadow_maps()

    def _program(self, shadows: int, casters: int) -> tuple[Any, dict[str, Any]]:
        """The shading program for `shadows` (0 none, 1 hard only, 2 soft) cast by `casters`
        lights, and its uniforms' locations, compiled on first use."""
        if (shadows, casters) not in self.programs:
            from OpenGL.GL import shaders

            GL = self.gl
            fragment = _FRAGMENT.replace("{soft_taps}", str(SOFT_TAPS))
            fragment = fragment.replace("{disk}", _disk())
            program = shaders.compileProgram(
                shaders.compileShader(_VERTEX, GL.GL_VERTEX_SHADER),
                shaders.compileShader(
                    fragment.replace("{shadows}", str(shadows)).replace("{casters}", str(casters)),
                    GL.GL_FRAGMENT_SHADER,
                ),
                validate=False,
            )
            uniforms = {
                name: GL.glGetUniformLocation(program, name)
                for name in (
                    "projection", "n_lights", "kind", "direction", "light_position", "radiance",
                    "cone", "ambient", "shadow_maps", "caster", "shadow_matrix",
                    "shadow_radius", "shadow_texel", "shadow_size",
                )
            }  # fmt: skip
            self.programs[shadows, casters] = (program, uniforms)
        return self.programs[shadows, casters]

    def _make_shadow_maps(self) -> None:
        """A depth texture array (one layer per light) with hardware comparison, and a
        framebuffer to draw into one layer at a time."""
        GL, n = self.gl, self.shadow_size
        self.shadow_maps = GL.glGenTextures(1)
        GL.glBindTexture(GL.GL_TEXTURE_2D_ARRAY, self.shadow_maps)
        GL.glTexImage3D(
            GL.GL_TEXTURE_2D_ARRAY, 0, GL.GL_DEPTH_COMPONENT24, n, n, MAX_LIGHTS, 0,
            GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT, None,
        )  # fmt: skip
        for name, value in (
            (GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR),  # linear + comparison: 2x2 PCF
            (GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR),
            (GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_BORDER),  # outside the map: lit
            (GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_BORDER),
            (GL.GL_TEXTURE_COMPARE_MODE, GL.GL_COMPARE_REF_TO_TEXTURE),
            (GL.GL_TEXTURE_COMPARE_FUNC, GL.GL_LEQUAL),
        ):
            GL.glTexParameteri(GL.GL_TEXTURE_2D_ARRAY, name, value)
        GL.glTexParameterfv(
            GL.GL_TEXTURE_2D_ARRAY, GL.GL_TEXTURE_BORDER_COLOR, np.ones(4, np.float32)
        )
        GL.glBindTexture(GL.GL_TEXTURE_2D_ARRAY, 0)
        self.shadow_fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.shadow_fbo)
        GL.glDrawBuffer(GL.GL_NONE)
        GL.glReadBuffer(GL.GL_NONE)
        GL.glFramebufferTextureLayer(
            GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, self.shadow_maps, 0, 0
        )
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"OpenGL shadow framebuffer incomplete (status {status:#x})")
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

    def _draw_shadow_map(self, layer: int, clip: np.ndarray, count: int, used: int) -> None:
        """The depth of the bound vertex array's `count` indices, seen through `clip` (4, 4),
        into the corner used x used of shadow map `layer` (the rest stays cleared: lit)."""
        GL = self.gl
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.shadow_fbo)
        GL.glFramebufferTextureLayer(
            GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, self.shadow_maps, 0, layer
        )
        GL.glClear(GL.GL_DEPTH_BUFFER_BIT)
        GL.glViewport(0, 0, used, used)
        # Both sides: the hand is open at the wrist, the forearm's tube at its ends.
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glEnable(GL.GL_POLYGON_OFFSET_FILL)
        GL.glPolygonOffset(_OFFSET_FACTOR, _OFFSET_UNITS)
        GL.glUniformMatrix4fv(self.light_clip, 1, GL.GL_TRUE, clip.astype(np.float32))
        GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, None)
        GL.glDisable(GL.GL_POLYGON_OFFSET_FILL)

    def draw(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        projection: np.ndarray,
        lights: list[Any],
        ambient: np.ndarray,
        znear: float,
        zfar: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """vertices (N, 11) float32: OpenGL camera-frame position, normal, albedo, alpha,
        roughness; faces (F, 3); lights: `handshape.render.synthetic.Light`, those with a
        `shadow` first draw their shadow map. Returns colour (S, S, 4) uint8 and depth (S, S)
        float32, metres along the view axis, 0 where nothing was drawn; row 0 at the top."""
        GL, size = self.gl, self.size
        if len(lights) > MAX_LIGHTS:
            raise ValueError(f"at most {MAX_LIGHTS} lights, got {len(lights)}")
        kinds = np.zeros(MAX_LIGHTS, np.int32)
        arrays = {k: np.zeros((MAX_LIGHTS, 3), np.float32) for k in ("d", "p", "r")}
        cones = np.zeros((MAX_LIGHTS, 2), np.float32)
        casters = np.zeros(MAX_LIGHTS, np.int32)
        matrices = np.tile(np.eye(4, dtype=np.float32), (MAX_LIGHTS, 1, 1))
        radii = np.zeros(MAX_LIGHTS, np.float32)
        texels = np.zeros(MAX_LIGHTS, np.float32)
        views = {}
        points = np.asarray(vertices[:, :3], np.float64)
        for i, light in enumerate(lights):
            if light.kind not in _KINDS:
                raise ValueError(f"unknown light kind '{light.kind}'")
            kinds[i] = _KINDS[light.kind]
            arrays["d"][i] = light.direction
            arrays["p"][i] = light.position
            arrays["r"][i] = np.asarray(light.color) * light.intensity
            cones[i] = (np.cos(0.5 * light.cone), np.cos(light.cone))
            softness = getattr(light, "shadow", None)
            if softness is not None:
                if softness < 0:
                    raise ValueError(f"a light's shadow softness must be >= 0, got {softness}")
                view = light_view(light.kind, light.direction, light.position, points, projection)
                # A soft shadow needs no more texels than puts SOFT_TEXELS across its filter's
                # radius: its taps then cover the disk densely (a smooth penumbra, not grain),
                # and the depth pass draws fewer pixels. It uses a corner of its layer.
                used = self.shadow_size
                if softness > 0:
                    want = int(np.ceil(SOFT_TEXELS * view.metres_per_unit / softness))
                    used = int(np.clip(want, 32, self.shadow_size))
                views[i] = (view, used)
                casters[len(views) - 1] = i
                corner = used / self.shadow_size
                matrices[i] = np.diag([corner, corner, 1.0, 1.0]) @ view.texture
                radii[i] = corner * softness / view.metres_per_unit
                texels[i] = view.metres_per_unit / used
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, vertices.nbytes, vertices, GL.GL_STREAM_DRAW)
        indices = np.ascontiguousarray(faces, dtype=np.uint32)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, indices.nbytes, indices, GL.GL_STREAM_DRAW)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDisable(GL.GL_BLEND)
        if views:
            GL.glUseProgram(self.shadow_program)
            for i, (view, used) in views.items():
                self._draw_shadow_map(i, view.clip, indices.size, used)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glViewport(0, 0, size, size)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        GL.glEnable(GL.GL_CULL_FACE)
        GL.glCullFace(GL.GL_BACK)
        program, u = self._program(0 if not views else 2 if radii.any() else 1, len(views))
        GL.glUseProgram(program)
        GL.glUniformMatrix4fv(u["projection"], 1, GL.GL_TRUE, projection.astype(np.float32))
        GL.glUniform1i(u["n_lights"], len(lights))
        GL.glUniform1iv(u["kind"], MAX_LIGHTS, kinds)
        GL.glUniform3fv(u["direction"], MAX_LIGHTS, arrays["d"])
        GL.glUniform3fv(u["light_position"], MAX_LIGHTS, arrays["p"])
        GL.glUniform3fv(u["radiance"], MAX_LIGHTS, arrays["r"])
        GL.glUniform2fv(u["cone"], MAX_LIGHTS, cones)
        GL.glUniform3fv(u["ambient"], 1, np.asarray(ambient, np.float32))
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D_ARRAY, self.shadow_maps)
        GL.glUniform1i(u["shadow_maps"], 0)
        GL.glUniform1iv(u["caster"], MAX_LIGHTS, casters)
        GL.glUniformMatrix4fv(u["shadow_matrix"], MAX_LIGHTS, GL.GL_TRUE, matrices)
        GL.glUniform1fv(u["shadow_radius"], MAX_LIGHTS, radii)
        GL.glUniform1fv(u["shadow_texel"], MAX_LIGHTS, texels)
        GL.glUniform1f(u["shadow_size"], float(self.shadow_size))
        GL.glDrawElements(GL.GL_TRIANGLES, indices.size, GL.GL_UNSIGNED_INT, None)
        GL.glBindVertexArray(0)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        colour = GL.glReadPixels(0, 0, size, size, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
        z = GL.glReadPixels(0, 0, size, size, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        colour = np.frombuffer(colour, np.uint8).reshape(size, size, 4)[::-1]
        z = np.frombuffer(z, np.float32).reshape(size, size)[::-1]
        drawn = z < 1.0
        ndc = 2.0 * z - 1.0
        depth = (2.0 * znear * zfar / (zfar + znear - ndc * (zfar - znear))).astype(np.float32)
        return np.ascontiguousarray(colour), np.where(drawn, depth, np.float32(0.0))
