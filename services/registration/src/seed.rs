pub async fn load(_e: &str) -> Result<(), String> {
    Err("todo".into())
}
pub async fn print_landscape(_e: &str) -> Result<(), String> {
    Err("todo".into())
}
