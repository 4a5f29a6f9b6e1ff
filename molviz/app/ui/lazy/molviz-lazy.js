// <molviz-lazy component ready src plugin delay ...attrs>: stands in for the Vue component `component`
// of a plugin whose script has not been loaded. Once `ready` is true and `delay` ms more have passed (at
// the browser's next idle moment) it loads `src`, installs `plugin`, and renders `component` with every
// other attribute and listener passed through. The page mounts without evaluating that script (plotly.js:
// 4.6 MB, seconds on a small CPU), so the 3D view draws its first picture first.
(function () {
  const loading = {};
  function load(src) {
    if (!loading[src]) {
      loading[src] = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = src;
        s.async = true;
        s.onload = resolve;
        s.onerror = () => reject(new Error("could not load " + src));
        document.head.appendChild(s);
      });
    }
    return loading[src];
  }
  window.molviz_lazy = {
    install(app) {
      const installed = new Set();
      app.component("molviz-lazy", {
        inheritAttrs: false,
        props: {
          component: String, ready: Boolean, src: String, plugin: String,
          delay: { type: Number, default: 0 },
        },
        data() { return { loaded: false, failed: "" }; },
        watch: { ready: { immediate: true, handler(v) { if (v) this.later(); } } },
        methods: {
          later() {
            const idle = window.requestIdleCallback || ((f) => setTimeout(f, 0));
            setTimeout(() => idle(() => this.start(), { timeout: 2000 }), this.delay);
          },
          start() {
            if (this.loaded) return;
            load(this.src).then(() => {
              if (!installed.has(this.plugin)) {
                app.use(window[this.plugin]);
                installed.add(this.plugin);
              }
              this.loaded = true;
            }).catch((e) => { this.failed = String(e); });
          },
        },
        render() {
          const { h, resolveComponent } = window.Vue;
          if (this.loaded) return h(resolveComponent(this.component), this.$attrs);
          const text = this.failed || "loading\u2026";
          return h("div", { class: "text-caption pa-2", style: this.$attrs.style }, text);
        },
      });
    },
  };
})();
