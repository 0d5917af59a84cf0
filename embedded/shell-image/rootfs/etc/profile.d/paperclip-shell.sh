# Login shells find the tools the inventory installs on the home volume (the same directories
# paperclip-shell-reconcile installs into), and npm globals go there too.
export NPM_CONFIG_PREFIX="$HOME/.local"
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) PATH="$HOME/.local/share/mise/shims:$HOME/.local/bin:$HOME/.cargo/bin:$PATH" ;;
esac
export PATH
